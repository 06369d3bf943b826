package federation

// HashTile returns a C2SP tlog-tiles hash tile of the ledger, as
// [ledger.Tree.HashTile] does.
func (s *State) HashTile(level, n int64, width int) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree.HashTile(level, n, width)
}

// EntryBundle returns a C2SP tlog-tiles entry bundle of the ledger, as
// [ledger.Tree.EntryBundle] does.
func (s *State) EntryBundle(n int64, width int) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree.EntryBundle(n, width)
}
