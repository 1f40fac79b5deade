// peer.cjs drives one xmtp-js 12.1.0 client against the local XMTP node for
// the Go interop tests. It prints one JSON object per line on stdout and
// exits non-zero with a message on stderr when anything goes wrong.
//
// Usage:
//   node peer.cjs start  <apiUrl> <peerAddress> <conversationId|-> <text> <replyText> [deflate|gzip]
//     Starts a conversation with peerAddress, sends text (compressed if
//     asked), then waits for a message from the peer whose text is
//     replyText.
//   node peer.cjs receive <apiUrl> <peerAddress> <conversationId|-> <text>
//     Publishes its contact, then waits until a conversation from
//     peerAddress (with that conversation id) holds a message with text.
'use strict'

const { Client } = require('@xmtp/xmtp-js')
const { content: contentProto } = require('@xmtp/proto')
const { privateKeyToAccount, generatePrivateKey } = require('viem/accounts')

const TIMEOUT_MS = 60_000
const POLL_MS = 100

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function wallet() {
  const account = privateKeyToAccount(generatePrivateKey())
  return {
    getAddress: async () => account.address,
    signMessage: async (message) =>
      account.signMessage({
        message: typeof message === 'string' ? message : { raw: Uint8Array.from(message) },
      }),
  }
}

// waitFor polls check until it returns a value or the deadline passes.
async function waitFor(what, check) {
  const deadline = Date.now() + TIMEOUT_MS
  let lastError
  while (Date.now() < deadline) {
    try {
      const v = await check()
      if (v !== undefined) return v
    } catch (e) {
      lastError = e
    }
    await new Promise((r) => setTimeout(r, POLL_MS))
  }
  throw new Error(`timed out waiting for ${what}${lastError ? ': ' + lastError.message : ''}`)
}

function describe(m) {
  return {
    id: m.id,
    sender: m.senderAddress,
    text: typeof m.content === 'string' ? m.content : null,
    contentType: m.contentType ? m.contentType.toString() : null,
    conversationId: m.conversation.context ? m.conversation.context.conversationId : '',
    topic: m.conversation.topic,
  }
}

async function main() {
  const [mode, apiUrl, peer, convIdArg, text, replyText, compression] = process.argv.slice(2)
  const conversationId = convIdArg === '-' ? '' : convIdArg
  const client = await Client.create(wallet(), {
    env: 'local',
    apiUrl,
    persistConversations: false,
  })
  emit({ event: 'ready', address: client.address })

  if (mode === 'start') {
    const canMessage = await waitFor('peer contact', async () =>
      (await client.canMessage(peer)) ? true : undefined
    )
    const context = conversationId ? { conversationId, metadata: { origin: 'xmtp-js' } } : undefined
    const convo = await client.conversations.newConversation(peer, context)
    const options = {}
    if (compression === 'deflate') options.compression = contentProto.Compression.COMPRESSION_DEFLATE
    if (compression === 'gzip') options.compression = contentProto.Compression.COMPRESSION_GZIP
    const sent = await convo.send(text, options)
    emit({ event: 'sent', canMessage, id: sent.id, topic: convo.topic, conversationId })
    const reply = await waitFor('reply', async () => {
      const msgs = await convo.messages()
      return msgs.find((m) => m.senderAddress === peer && m.content === replyText)
    })
    emit({ event: 'reply', ...describe(reply) })
  } else if (mode === 'receive') {
    const msg = await waitFor('message', async () => {
      const convos = await client.conversations.list()
      for (const c of convos) {
        if (c.peerAddress !== peer) continue
        const id = c.context ? c.context.conversationId : ''
        if (id !== conversationId) continue
        const msgs = await c.messages()
        const m = msgs.find((m) => m.senderAddress === peer && m.content === text)
        if (m) return m
      }
      return undefined
    })
    emit({ event: 'received', ...describe(msg) })
  } else {
    throw new Error(`unknown mode ${mode}`)
  }
  await client.close()
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`peer.cjs: ${e && e.stack ? e.stack : e}\n`)
    process.exit(1)
  }
)
