package node

import (
	"errors"
	"math"

	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
)

// ErrBadCursor reports a paging cursor that names no possible envelope.
var ErrBadCursor = errors.New("malformed paging cursor")

// ErrBadLimit reports a page size above the node's maximum.
var ErrBadLimit = errors.New("page size too large")

// ErrNoTopics reports a query without content topics.
var ErrNoTopics = errors.New("content topics required")

// cursorPosition is a decoded paging cursor: the position of the last
// envelope of the previous page.
type cursorPosition struct {
	timestamp int64
	digest    []byte
}

// validQuery is a query request that passed validation.
type validQuery struct {
	topics     []string
	start, end int64
	descending bool
	limit      int
	cursor     *cursorPosition
}

// decodeCursor validates the cursor of a paging request. It returns nil
// when the request has no usable cursor: no paging info, no cursor, or the
// empty cursor some clients send on the first page. A cursor must carry a
// 32-byte digest (or none) and a timestamp in the stored range.
func decodeCursor(info *messagev1.PagingInfo) (*cursorPosition, error) {
	idx := info.GetCursor().GetIndex()
	if idx == nil {
		return nil, nil
	}
	if len(idx.Digest) == 0 && idx.SenderTimeNs == 0 {
		return nil, nil
	}
	if len(idx.Digest) != 0 && len(idx.Digest) != 32 {
		return nil, ErrBadCursor
	}
	if idx.SenderTimeNs > math.MaxInt64 {
		return nil, ErrBadCursor
	}
	digest := idx.Digest
	if digest == nil {
		digest = []byte{}
	}
	return &cursorPosition{timestamp: int64(idx.SenderTimeNs), digest: digest}, nil
}

// validateQuery checks a query request against the node's limits. The
// direction defaults to descending, as in xmtp-node-go.
func validateQuery(req *messagev1.QueryRequest, maxTopics int) (validQuery, string, error) {
	var q validQuery
	if len(req.ContentTopics) == 0 {
		return q, reasonNoTopics, ErrNoTopics
	}
	if len(req.ContentTopics) > maxTopics {
		return q, reasonTooManyTopics, ErrTooManyTopics
	}
	for _, t := range req.ContentTopics {
		if _, err := ParseTopic(t); err != nil {
			return q, reasonBadTopic, err
		}
	}
	q.topics = req.ContentTopics
	q.start = clampTime(req.StartTimeNs)
	q.end = math.MaxInt64
	if req.EndTimeNs != 0 {
		q.end = clampTime(req.EndTimeNs)
	}
	info := req.GetPagingInfo()
	q.limit = int(info.GetLimit())
	if q.limit == 0 {
		q.limit = defaultPageSize
	}
	if q.limit > defaultPageSize {
		return q, reasonBadLimit, ErrBadLimit
	}
	q.descending = info.GetDirection() != messagev1.SortDirection_SORT_DIRECTION_ASCENDING
	cur, err := decodeCursor(info)
	if err != nil {
		return q, reasonBadCursor, err
	}
	q.cursor = cur
	return q, "", nil
}
