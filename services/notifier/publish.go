package notifier

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// statusMsg is the terminal status notification of a request. It is
// written only where no notification of the request exists yet, so that
// however late an event is delivered again, a request ends once.
func (n *Notifier) statusMsg(s *teatreev1.RequestStatus) (*nats.Msg, error) {
	body, err := wire.Marshal(s)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(n.cfg.Names.NtfRequest(s.GetModel(), s.GetRequestId()))
	m.Data = body
	m.Header.Set(subject.HeaderMsgID, subject.RequestNtfMsgID(s.GetModel(), s.GetRequestId(), 1))
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	m.Header.Set(subject.HeaderModel, s.GetModel())
	m.Header.Set(subject.HeaderRequestID, s.GetRequestId())
	m.Header.Set(subject.HeaderStatus, s.GetStatus())
	setPrincipal(m, s.GetPrincipal())
	if s.GetSeq() > 0 {
		m.Header.Set(subject.HeaderSeq, strconv.FormatUint(s.GetSeq(), 10))
	}
	m.Header.Set(subject.HeaderPage, "1")
	m.Header.Set(subject.HeaderPages, "1")
	m.Header.Set(subject.HeaderContentType, subject.ContentJSON)
	return m, nil
}

// setPrincipal names who sent a request on its notification, if anyone.
func setPrincipal(m *nats.Msg, principal string) {
	if principal != "" {
		m.Header.Set(subject.HeaderPrincipal, principal)
	}
}

// exists reports whether a notification was already published on subj:
// a replayed outcome may be older than TT_NTF's duplicate window.
func (n *Notifier) exists(ctx context.Context, subj string) (bool, error) {
	_, err := n.last(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	return err == nil, err
}

// last returns the newest notification on subj.
func (n *Notifier) last(ctx context.Context, subj string) (*jetstream.RawStreamMsg, error) {
	m, err := n.ntf.GetLastMsgForSubject(ctx, subj)
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("read %s: %w", subj, err)
	}
	return m, err
}

// alreadyNotified reports a publish refused because its subject holds a
// notification already: the message expected to be the first there.
func alreadyNotified(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
