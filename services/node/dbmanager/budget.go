package dbmanager

import "context"

// Budget is what the db-managers of one node share. Work bounds the models
// running DuckDB work at once (applying a batch, staging or exporting a
// version): each may use up to its memory limit while it works, and little
// between batches, so the node's DuckDB memory stays within work × limit
// however many models are open. Publications bounds the versions being
// published at once: a model whose turn does not come keeps applying, and
// its next version holds every change made meanwhile, so under load its
// versions come further apart instead of piling up. A nil Budget bounds
// nothing.
type Budget struct {
	work, publications chan struct{}
}

// NewBudget returns a budget of work models working and publications
// versions being published at once.
func NewBudget(work, publications int) *Budget {
	return &Budget{work: make(chan struct{}, max(work, 1)), publications: make(chan struct{}, max(publications, 1))}
}

// startWork waits for room to run DuckDB work, or for ctx to end.
func (b *Budget) startWork(ctx context.Context) error {
	if b == nil {
		return nil
	}
	select {
	case b.work <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// endWork gives back the room startWork took.
func (b *Budget) endWork() {
	if b != nil {
		<-b.work
	}
}

// tryPublish takes a place for a publication if one is free.
func (b *Budget) tryPublish() bool {
	if b == nil {
		return true
	}
	select {
	case b.publications <- struct{}{}:
		return true
	default:
		return false
	}
}

// published gives back the place tryPublish took.
func (b *Budget) published() {
	if b != nil {
		<-b.publications
	}
}
