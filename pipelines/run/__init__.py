"""What every stage run shares: the lock, resume, stage times, the machine, the Beam runner."""
