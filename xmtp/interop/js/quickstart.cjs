// quickstart.cjs messages a bridge with xmtp-js 12.1.0 and prints its
// reply: the snippet `bridge dev` prints, and what the end-to-end tests run.
//
// Usage (from the repository root, after `npm ci --prefix xmtp/interop/js`):
//   node xmtp/interop/js/quickstart.cjs <bridgeAddress> [text] [apiUrl]
// text defaults to "hello" and apiUrl to http://127.0.0.1:5555, the local
// XMTP node of `bridge dev`. It prints one JSON line per step on stdout
// ({"event":"ready"|"sent"|"reply", ...}) and exits non-zero when no reply
// arrives within QUICKSTART_TIMEOUT_MS (default 60000).
'use strict'

const { Client } = require('@xmtp/xmtp-js')
const { privateKeyToAccount, generatePrivateKey } = require('viem/accounts')

const [bridge, text = 'hello', apiUrl = 'http://127.0.0.1:5555'] = process.argv.slice(2)
const timeoutMs = Number(process.env.QUICKSTART_TIMEOUT_MS || 60000)

async function main() {
  if (!/^0x[0-9a-fA-F]{40}$/.test(bridge || '')) {
    throw new Error('usage: node quickstart.cjs <bridgeAddress> [text] [apiUrl]')
  }
  // A throwaway wallet: xmtp-js signs its identity key with it.
  const account = privateKeyToAccount(generatePrivateKey())
  const wallet = {
    getAddress: async () => account.address,
    signMessage: async (m) => account.signMessage({ message: typeof m === 'string' ? m : { raw: Uint8Array.from(m) } }),
  }
  const xmtp = await Client.create(wallet, { env: 'local', apiUrl, persistConversations: false })
  console.log(JSON.stringify({ event: 'ready', address: xmtp.address }))

  const deadline = Date.now() + timeoutMs
  while (!(await xmtp.canMessage(bridge))) {
    if (Date.now() > deadline) throw new Error(`${bridge} is not on this XMTP network`)
    await new Promise((r) => setTimeout(r, 200))
  }
  const conversation = await xmtp.conversations.newConversation(bridge)
  const sent = await conversation.send(text)
  console.log(JSON.stringify({ event: 'sent', id: sent.id, text, topic: conversation.topic }))

  // Wait for the bridge's reply on the same conversation.
  while (Date.now() < deadline) {
    const messages = await conversation.messages({ startTime: sent.sent })
    const reply = messages.find((m) => m.senderAddress === conversation.peerAddress && m.id !== sent.id)
    if (reply) {
      console.log(JSON.stringify({ event: 'reply', id: reply.id, sender: reply.senderAddress, text: reply.content }))
      await xmtp.close()
      return
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`no reply from ${bridge} within ${timeoutMs} ms`)
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`quickstart.cjs: ${e && e.message ? e.message : e}\n`)
    process.exit(1)
  }
)
