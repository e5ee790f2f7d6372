package diagnose

// ForgetSocketSnapshot drops the cached listing of the host's sockets, for
// tests that open a listener and diagnose at once.
func ForgetSocketSnapshot() {
	snapMu.Lock()
	lastSnap = socketSnapshot{}
	snapMu.Unlock()
}
