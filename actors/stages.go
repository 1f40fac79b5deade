package actors

import "time"

// Timing of a new message's way through the bridge
// (bridge_forward_stage_seconds). A message read from the node
// subscription carries a stageClock from the moment its identity takes
// it to the publish of its reply; each step observes its own stage. Only
// a delivery's first attempt, started from its record
// (deliveryTask.start), carries one: retries and swept deliveries are not
// timed.

// stage is a step of a message's way through the bridge.
type stage int

const (
	stageOpen stage = iota
	stageRecord
	stageDispatch
	stageWebhook
	stageSeal
	stageComplete
	stagePublishQueue
	stagePublish
	numStages
)

var stageNames = [numStages]string{"open", "record", "dispatch", "webhook", "seal", "complete", "publish_queue", "publish"}

// stageBuckets resolve the sub-millisecond steps as well as a slow
// endpoint's.
var stageBuckets = []float64{.0001, .00025, .0005, .00075, .001, .0015, .002, .003, .005, .0075, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

// stageClock times one message: last is when its previous stage ended.
// A nil clock times nothing.
type stageClock struct {
	m    *metrics
	last time.Time
}

// newStageClock starts timing a message taken now.
func newStageClock(m *metrics, at time.Time) *stageClock { return &stageClock{m: m, last: at} }

// mark ends stage s now, and the next one begins.
func (c *stageClock) mark(s stage) { c.markAt(s, time.Now()) }

// markAt ends stage s at t, and the next one begins.
func (c *stageClock) markAt(s stage, t time.Time) {
	if c == nil {
		return
	}
	c.m.stage[s].Observe(max(0, t.Sub(c.last).Seconds()))
	c.last = t
}
