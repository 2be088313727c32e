package toolworkers

// publishUsage publishes the usage event of one call (to be built).
func (w *Worker) publishUsage(rec callRecord) {}
