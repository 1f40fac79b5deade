// fixtures.cjs prints key material made by xmtp-js 12.1.0 as JSON, for the
// golden tests in xmtp/keys/testdata. Run: node fixtures.cjs > ../../keys/testdata/xmtpjs.json
'use strict'

const xmtp = require('@xmtp/xmtp-js')
const { contact } = require('@xmtp/proto')
const { privateKeyToAccount, generatePrivateKey } = require('viem/accounts')

async function main() {
  const account = privateKeyToAccount(generatePrivateKey())
  const wallet = {
    getAddress: async () => account.address,
    signMessage: async (message) =>
      account.signMessage({
        message: typeof message === 'string' ? message : { raw: Uint8Array.from(message) },
      }),
  }
  const v1 = await xmtp.PrivateKeyBundleV1.generate(wallet)
  const v2 = xmtp.PrivateKeyBundleV2.fromLegacyBundle(v1)
  const created = new Date()
  const token = await new xmtp.LocalAuthenticator(v1.identityKey).createToken(created)
  const b64 = (u8) => Buffer.from(u8).toString('base64')
  process.stdout.write(
    JSON.stringify(
      {
        address: account.address,
        privateKeyBundleV1: b64(v1.encode()),
        privateKeyBundleV2: b64(v2.encode()),
        contactV1: b64(contact.ContactBundle.encode({ v1: { keyBundle: v1.getPublicKeyBundle() } }).finish()),
        contactV2: b64(contact.ContactBundle.encode({ v2: { keyBundle: v2.getPublicKeyBundle() } }).finish()),
        authToken: token.toBase64(),
        authTokenCreatedMs: created.getTime(),
      },
      null,
      2
    ) + '\n'
  )
}

main().catch((e) => {
  process.stderr.write(`fixtures.cjs: ${e && e.stack ? e.stack : e}\n`)
  process.exit(1)
})
