package node

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	messagev1 "github.com/xmtp/proto/v3/go/message_api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// streamWriteBuffer is the write buffer of one HTTP subscription. An
// envelope is written through it in pieces, base64 included, so a client
// that stops reading holds this buffer and its byte budget of shared
// envelopes, never a copy of an envelope.
const streamWriteBuffer = 32 << 10

// decodeOptions are the grpc-gateway's: unknown fields are ignored, as
// xmtp-node-go's gateway ignores them.
var decodeOptions = protojson.UnmarshalOptions{DiscardUnknown: true}

// subscribe serves POST /message/v1/subscribe (and subscribe-all) as the
// grpc-gateway streams Subscribe: the response headers as soon as the
// subscription is live, then one {"result":<envelope>} line per envelope,
// and an {"error":<status>} line when the node ends the stream. Each write
// has StreamWriteTimeout to complete; a client that does not read is
// disconnected then, or sooner when its byte budget runs out.
func (g *gateway) subscribe(w http.ResponseWriter, r *http.Request, state *requestState, all bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if state.tooLarge.Load() {
			g.tooLarge(w, r, state)
			return
		}
		g.writeStatus(w, r, http.StatusBadRequest, status.New(codes.InvalidArgument, "read request body: "+err.Error()))
		return
	}
	var req proto.Message = &messagev1.SubscribeAllRequest{}
	sreq := &messagev1.SubscribeRequest{}
	if !all {
		req = sreq
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeOptions.Unmarshal(body, req); err != nil {
			g.writeStatus(w, r, http.StatusBadRequest, status.New(codes.InvalidArgument, err.Error()))
			return
		}
	}
	if err := g.svc.checkTopics(sreq.ContentTopics); err != nil {
		g.writeStatus(w, r, runtime.HTTPStatusFromCode(status.Code(err)), status.Convert(err))
		return
	}
	release, err := g.svc.acquire(state.client)
	if err != nil {
		g.writeStatus(w, r, http.StatusTooManyRequests, status.Convert(err))
		return
	}
	defer release()
	sub := g.n.fanout.subscribe(all, g.n.subscriberBuffer, g.n.subscriberBytes)
	if !all {
		g.n.fanout.setTopics(sub, sreq.ContentTopics)
	}
	defer g.n.fanout.unsubscribe(sub)
	g.n.metrics.subscribers.Inc()
	defer g.n.metrics.subscribers.Dec()

	rc := http.NewResponseController(w)
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Grpc-Metadata-Subscribed", "true")
	_ = rc.SetWriteDeadline(time.Now().Add(g.n.cfg.StreamWriteTimeout))
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	bw := bufio.NewWriterSize(w, streamWriteBuffer)
	ctx := r.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.n.closing:
			g.endStream(rc, bw, status.New(codes.Unavailable, "node shutting down"))
			return
		case <-sub.cut:
			g.n.log.Warn("cut off slow subscriber", slog.String("client", state.client), slog.Int64("budget_bytes", sub.budget))
			g.endStream(rc, bw, status.New(codes.ResourceExhausted, "subscriber too slow: buffer full"))
			return
		case env := <-sub.ch:
			sub.taken(env)
			if !sub.wants(env.ContentTopic) {
				continue
			}
			_ = rc.SetWriteDeadline(time.Now().Add(g.n.cfg.StreamWriteTimeout))
			writeEnvelopeLine(bw, env)
			err := bw.Flush()
			if err == nil {
				err = rc.Flush()
			}
			if err != nil {
				g.streamWriteFailed(sub, state, err)
				return
			}
		}
	}
}

// streamWriteFailed records a subscription whose write failed. One that
// timed out is a slow subscriber cut off, counted as such unless its
// byte budget already cut it.
func (g *gateway) streamWriteFailed(sub *subscriber, state *requestState, err error) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	select {
	case <-sub.cut:
		return
	default:
	}
	g.n.metrics.cutOff.Inc()
	g.n.log.Warn("cut off slow subscriber", slog.String("client", state.client), slog.Duration("write_timeout", g.n.cfg.StreamWriteTimeout))
}

// endStream writes the closing error line of a stream, giving a client
// that does not read one second.
func (g *gateway) endStream(rc *http.ResponseController, bw *bufio.Writer, st *status.Status) {
	_ = rc.SetWriteDeadline(time.Now().Add(time.Second))
	msg, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(st.Proto())
	if err != nil {
		return
	}
	bw.WriteString(`{"error":`)
	bw.Write(msg)
	bw.WriteString("}\n")
	if bw.Flush() == nil {
		_ = rc.Flush()
	}
}

// writeEnvelopeLine writes {"result":<envelope>} and a newline, the
// envelope as protojson writes it (the timestamp a string, the message
// base64). Errors stay in bw and show at its Flush.
func writeEnvelopeLine(bw *bufio.Writer, env *messagev1.Envelope) {
	topic, _ := json.Marshal(env.ContentTopic)
	bw.WriteString(`{"result":{"contentTopic":`)
	bw.Write(topic)
	bw.WriteString(`,"timestampNs":"`)
	bw.WriteString(strconv.FormatUint(env.TimestampNs, 10))
	bw.WriteString(`","message":"`)
	enc := base64.NewEncoder(base64.StdEncoding, bw)
	enc.Write(env.Message)
	enc.Close()
	bw.WriteString("\"}}\n")
}
