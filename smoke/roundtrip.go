package smoke

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/xmtpbridge/bridge/xmtp/api"
	"github.com/xmtpbridge/bridge/xmtp/client"
	"github.com/xmtpbridge/bridge/xmtp/keys"
)

// CanaryPrefix starts the text the check sends to its bridge; the run's
// nonce follows.
const CanaryPrefix = "smoke "

// sendRetry is the pause between two sends while the new bridge's contact
// bundle is not on the network yet.
const sendRetry = 250 * time.Millisecond

// checkHostPort checks that addr is host:port with a port number.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("XMTP node address %q must be host:port, for example xmtp.example.net:5556", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("XMTP node address %q has an invalid port", addr)
	}
	return nil
}

// canary proves the whole path from outside: a fresh XMTP identity,
// created here, messages the smoke bridge over the deployment's XMTP node;
// the node's ingress routes it to the bridge, whose forward handler POSTs
// it to the forward target (the deployment's /canary), and the target's
// answer comes back as the bridge's XMTP reply. The step passes when a
// reply from the bridge carrying this run's nonce arrives.
func (c *check) canary(ctx context.Context) (string, error) {
	var opts []api.Option
	if c.cfg.XMTPTLS {
		host, _, _ := net.SplitHostPort(c.cfg.XMTP)
		opts = append(opts, api.WithTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}))
	}
	conn, err := api.Dial(ctx, c.cfg.XMTP, opts...)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	bundle, err := keys.Generate()
	if err != nil {
		return "", fmt.Errorf("generate an XMTP identity: %w", err)
	}
	me, err := client.New(client.Config{Bundle: bundle, API: conn})
	if err != nil {
		return "", err
	}
	if err := me.Start(ctx); err != nil {
		return "", fmt.Errorf("reach the XMTP node %s: %w", c.cfg.XMTP, err)
	}
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	inbound, err := me.Inbound(streamCtx)
	if err != nil {
		return "", fmt.Errorf("subscribe on the XMTP node %s: %w", c.cfg.XMTP, err)
	}

	text := CanaryPrefix + c.nonce
	start := time.Now()
	sent, err := c.sendWhenOnline(ctx, me, text)
	if err != nil {
		return "", err
	}
	for {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no reply from bridge %s within %s of sending %q on %s: the forward path (ingress, forward handler, %s, reply) is broken or slow",
				c.address, round(time.Since(start)), text, sent.Topic, c.cfg.ForwardURL)
		case m, ok := <-inbound:
			if !ok {
				return "", fmt.Errorf("the XMTP stream from %s ended before the reply arrived", c.cfg.XMTP)
			}
			if !strings.EqualFold(m.Sender, c.address) || m.Topic != sent.Topic {
				continue
			}
			got, err := m.Content.Text()
			if err != nil || !strings.Contains(got, c.nonce) {
				return "", fmt.Errorf("bridge %s replied %q, which lacks the nonce %s", c.address, printable(got, 200), c.nonce)
			}
			return fmt.Sprintf("reply from %s over XMTP in %s: %q", c.address, round(time.Since(start)), printable(got, 120)), nil
		}
	}
}

// sendWhenOnline sends text to the bridge, retrying while its contact
// bundle is not published yet (the bridge comes online moments after it
// was created).
func (c *check) sendWhenOnline(ctx context.Context, me *client.Client, text string) (*client.Sent, error) {
	for {
		sent, err := me.SendText(ctx, c.address, text)
		if err == nil {
			return sent, nil
		}
		if !errors.Is(err, client.ErrPeerNotOnNetwork) {
			return nil, fmt.Errorf("message bridge %s: %w", c.address, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bridge %s never published its XMTP contact, so it is not online: %w", c.address, err)
		case <-time.After(sendRetry):
		}
	}
}
