package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/xmtpbridge/bridge/system"
	"github.com/xmtpbridge/bridge/system/config"
)

// printQuickStart writes what a newcomer needs once `bridge dev` serves:
// where everything listens, and commands to copy that sign up, create a
// bridge and message it from xmtp-js. The forward target in the examples
// is the node's own /canary, which answers every relaycc body, so nothing
// else has to run.
func printQuickStart(w io.Writer, cfg *config.Config, n *system.Node) {
	api := "http://" + n.HTTPAddr()
	xmtpURL := "http://" + n.XMTPHTTPAddr()
	if n.XMTPHTTPAddr() == "" {
		xmtpURL = "<the HTTP gateway of " + cfg.XMTPNode + ">"
	}
	key := cfg.SignupKey
	if key == "" {
		key = "<any value: signup is open>"
	}
	ids := n.Identities()
	canary := "off"
	if cfg.CanaryInterval > 0 {
		canary = "every " + cfg.CanaryInterval.String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, `
bridge dev is running
  API            %[1]s   (OpenAPI %[1]s/openapi.json, metrics %[1]s/metrics)
  XMTP node      %[2]s   (the apiUrl of xmtp-js), gRPC %[3]s
  signup key     %[4]s
  API identity   %[5]s   (its messages {targetAddress, message} are reverse commands)
  canary         %[6]s, %[7]s

Quick start, in another terminal from the repository root:

  # 1. Create a bridge (relaycc API). Its target here is this node's own
  #    /canary, which answers every message; use your own URL instead.
  curl -s -X POST %[1]s/signup -H 'content-type: application/json' \
    -d '{"key":"%[4]s","forwardHandler":{"httpUrl":"%[1]s/canary","isBot":true}}'
  # -> {"ethAddress":"0x…","hookToken":"xbh_…","webhookSecret":"whsec_…","ok":true}

  # 2. Message it from xmtp-js and print the reply (npm ci --prefix xmtp/interop/js once).
  node xmtp/interop/js/quickstart.cjs 0xTHE_ETH_ADDRESS hello %[2]s

  # The same in your own code (xmtp-js 12):
  #   const xmtp = await Client.create(wallet, { env: 'local', apiUrl: '%[2]s' })
  #   const convo = await xmtp.conversations.newConversation('0xTHE_ETH_ADDRESS')
  #   await convo.send('hello')
  #   for await (const m of await convo.streamMessages()) console.log(m.senderAddress, m.content)

  # 3. The REST API: an account, a bridge with JSON webhooks, a message out.
  curl -s -X POST %[1]s/v1/accounts -H 'content-type: application/json' \
    -d '{"name":"me","signupKey":"%[4]s"}'                # -> "apiKey":"xbk_…"
  curl -s -X POST %[1]s/v1/bridges -H 'authorization: Bearer xbk_…' \
    -H 'content-type: application/json' -d '{"name":"demo","forward":{"url":"https://example.com/hook"}}'
  curl -s -X POST %[1]s/v1/bridges/BRIDGE_ID/messages -H 'authorization: Bearer xbk_…' \
    -H 'content-type: application/json' -d '{"to":"0xRECIPIENT","content":"hi from the bridge"}'

`, api, xmtpURL, n.XMTPAddr(), key, ids.API, canary, ids.Canary)
	fmt.Fprint(w, b.String())
}
