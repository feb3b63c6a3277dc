package dbmanager

// Publications is a node's budget of versions being published at once,
// shared by its models' db-managers: publishing costs CPU and disk that
// mutations need too. A model whose turn does not come keeps applying, and
// its next version holds every change made meanwhile, so under load a
// model's versions come further apart instead of piling up.
type Publications struct{ slots chan struct{} }

// NewPublications returns a budget of n publications at once.
func NewPublications(n int) *Publications {
	return &Publications{slots: make(chan struct{}, max(n, 1))}
}

// tryStart takes a place in the budget if one is free; a nil budget always
// has one.
func (p *Publications) tryStart() bool {
	if p == nil {
		return true
	}
	select {
	case p.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// done gives back a place tryStart took.
func (p *Publications) done() {
	if p != nil {
		<-p.slots
	}
}
