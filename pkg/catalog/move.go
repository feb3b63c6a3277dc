package catalog

// MoveRequest asks the dispatcher, on subject.Names.DispatchMove, to move
// a model's lease to a node (POST /v1/models/{model}/move).
type MoveRequest struct {
	Model string `json:"model"`
	To    string `json:"to"`
}

// Move answers a move once the target holds the model's lease: From is
// the node that held it before ("" when none did), Epoch the target's
// lease epoch.
type Move struct {
	Model string `json:"model"`
	From  string `json:"from"`
	To    string `json:"to"`
	Epoch uint64 `json:"epoch"`
}
