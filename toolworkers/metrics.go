package toolworkers

// recordMetrics updates the worker's metrics for one call (to be built).
func (w *Worker) recordMetrics(rec callRecord) {}
