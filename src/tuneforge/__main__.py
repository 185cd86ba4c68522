from tuneforge.cli import app

app()
