package subject

// CallJobMsgID is the Nats-Msg-Id of a compute call's job in TT_CALL:
// <model>.<call id>.job. The call itself came on the same stream as
// <model>.<call id>, so the job needs an id of its own or JetStream would
// drop it as a duplicate of the call.
func CallJobMsgID(model, callID string) string { return model + "." + callID + ".job" }

// CallEventMsgID is the Nats-Msg-Id of an event of a compute call on
// tt.evt.<model>.call: <model>.<call id>.<what>, where what is queued,
// cancelled or <attempt>.<event>.
func CallEventMsgID(model, callID, what string) string { return model + "." + callID + "." + what }
