"""Workers: claim, heartbeat, cancel and recover jobs, and the child-process entry point of each job kind (tuning
runs, pipeline tasks). May import control and everything below it; never api or cli."""
