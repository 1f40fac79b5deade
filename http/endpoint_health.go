package http

import (
	"time"

	"github.com/xmtpbridge/bridge/persistence"
)

// endpointHealthView is the health of a bridge's endpoint in responses
// (schema EndpointHealth).
type endpointHealthView struct {
	State         string     `json:"state"`
	FailureStreak int        `json:"failureStreak"`
	LastSuccessAt *time.Time `json:"lastSuccessAt,omitempty"`
	LastFailureAt *time.Time `json:"lastFailureAt,omitempty"`
	OpenedAt      *time.Time `json:"openedAt,omitempty"`
	NextProbeAt   *time.Time `json:"nextProbeAt,omitempty"`
}

func viewEndpointHealth(h persistence.EndpointHealth) endpointHealthView {
	utc := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		u := t.UTC()
		return &u
	}
	return endpointHealthView{
		State: string(h.State), FailureStreak: h.FailureStreak,
		LastSuccessAt: utc(h.LastSuccessAt), LastFailureAt: utc(h.LastFailureAt),
		OpenedAt: utc(h.OpenedAt), NextProbeAt: utc(h.NextProbeAt),
	}
}
