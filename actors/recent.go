package actors

// recent is a bounded set of message ids an identity handled lately, so an
// envelope that arrives both live and from a catch-up query is handled
// once. The oldest ids fall out first. It grows only as ids arrive, so an
// idle identity costs next to nothing. It is used by one actor only.
type recent struct {
	size  int
	ids   map[string]struct{}
	order []string
	next  int
}

func newRecent(size int) *recent {
	return &recent{size: size}
}

// add records id and reports whether it was new.
func (r *recent) add(id string) bool {
	if _, ok := r.ids[id]; ok {
		return false
	}
	if r.ids == nil {
		r.ids = map[string]struct{}{}
	}
	r.ids[id] = struct{}{}
	if len(r.order) < r.size {
		r.order = append(r.order, id)
		return true
	}
	delete(r.ids, r.order[r.next])
	r.order[r.next] = id
	r.next = (r.next + 1) % r.size
	return true
}

// forget drops id, so it counts as new again: for a message whose handling
// failed and will be tried again.
func (r *recent) forget(id string) {
	delete(r.ids, id)
}
