"""The control plane: the job store (tables, migrations), the tuningJobs / pipelineJobs / endpoints / models services,
operations, model registration and auto-deploy. May import train, serve's lower layers (infer, data, catalog) and
the base (wire, settings, errors, storage); never api, worker or cli."""
