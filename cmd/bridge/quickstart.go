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
// bridge and message it from xmtp-js, with the CLI and then with curl. The forward target in the examples
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

  # 1. An account: the signup key on stdin; its API key is saved for the
  #    other commands (mode 0600) and never shown.
  echo '%[4]s' | bin/bridge login --api %[1]s --signup --name me

  # 2. A bridge. Its endpoint here is this node's own /canary, which
  #    answers every message as a bot; use your own URL instead.
  bin/bridge bridges create echo --url %[1]s/canary --body-format relaycc --reply-mode reply
  # -> address: 0x…  webhook secret: whsec_… (shown once)

  # 3. Message it from xmtp-js and print the reply (npm ci --prefix xmtp/interop/js once).
  node xmtp/interop/js/quickstart.cjs 0xTHE_ADDRESS hello %[2]s

  # The same in your own code (xmtp-js 12):
  #   const xmtp = await Client.create(wallet, { env: 'local', apiUrl: '%[2]s' })
  #   const convo = await xmtp.conversations.newConversation('0xTHE_ADDRESS')
  #   await convo.send('hello')
  #   for await (const m of await convo.streamMessages()) console.log(m.senderAddress, m.content)

  # 4. What reached the endpoint; a message sent as the bridge.
  bin/bridge deliveries echo
  bin/bridge send echo 0xRECIPIENT 'hi from the bridge'

  # The same with curl (the REST API; %[1]s/openapi.json has all of it):
  curl -s -X POST %[1]s/v1/accounts -H 'content-type: application/json' \
    -d '{"name":"me","signupKey":"%[4]s"}'                # -> "apiKey":"xbk_…"
  curl -s -X POST %[1]s/v1/bridges -H 'authorization: Bearer xbk_…' \
    -H 'content-type: application/json' -d '{"name":"echo","forward":{"url":"%[1]s/canary","bodyFormat":"relaycc","replyMode":"reply"}}'
  curl -s -X POST %[1]s/v1/bridges/BRIDGE_ID/messages -H 'authorization: Bearer xbk_…' \
    -H 'content-type: application/json' -d '{"to":"0xRECIPIENT","content":"hi from the bridge"}'
  # relaycc style, a bridge and its hook token in one call:
  curl -s -X POST %[1]s/signup -H 'content-type: application/json' \
    -d '{"key":"%[4]s","forwardHandler":{"httpUrl":"%[1]s/canary","isBot":true}}'

`, api, xmtpURL, n.XMTPAddr(), key, ids.API, canary, ids.Canary)
	fmt.Fprint(w, b.String())
}
