package keys

// Content topic builders. Every XMTP content topic is /xmtp/0/<name>/proto,
// with addresses in EIP-55 form.

func topic(name string) string { return "/xmtp/0/" + name + "/proto" }

// ContactTopic returns the topic where addr publishes its public bundles.
func ContactTopic(addr string) string { return topic("contact-" + ChecksumAddress(addr)) }

// InviteTopic returns the topic carrying sealed invitations sent and received
// by addr.
func InviteTopic(addr string) string { return topic("invite-" + ChecksumAddress(addr)) }

// IntroTopic returns the legacy V1 introduction topic of addr.
func IntroTopic(addr string) string { return topic("intro-" + ChecksumAddress(addr)) }

// PrivateStoreTopic returns the topic where xmtp-js keeps the wallet-encrypted
// private key backup of addr.
func PrivateStoreTopic(addr string) string {
	return topic("privatestore-" + ChecksumAddress(addr) + "/key_bundle")
}

// ConversationTopic returns the content topic of a V2 conversation from its
// hex name part (without the m- prefix).
func ConversationTopic(hexName string) string { return topic("m-" + hexName) }
