import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Served by `tuneforge serve` at /console; the Python package carries ../dist. No asset comes from outside the server.
export default defineConfig({
  base: "/console/",
  plugins: [react()],
  build: { outDir: "../dist", emptyOutDir: true, assetsInlineLimit: 0, chunkSizeWarningLimit: 1500 },
});
