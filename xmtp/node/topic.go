package node

import (
	"errors"
	"strings"
)

// ErrMalformedTopic reports a content topic that is not of the form
// /xmtp/0/<name>/proto.
var ErrMalformedTopic = errors.New("malformed content topic")

const (
	topicPrefix = "/xmtp/0/"
	// ephemeralPrefix and ephemeralV1Prefix start the topics whose
	// envelopes the node relays to the streams subscribed at the time and
	// never stores, as xmtp-node-go does: those of v2 conversations
	// (mE-, xmtp-js's ephemeral messages) and of v1 ones (dmE-).
	ephemeralPrefix   = "/xmtp/0/mE-"
	ephemeralV1Prefix = "/xmtp/0/dmE-"
	topicSuffix       = "/proto"
	// maxTopicBytes bounds a content topic; xmtp-node-go uses the same size.
	maxTopicBytes = 300
)

// ParseTopic checks that topic is a content topic of the form
// /xmtp/0/<name>/proto and returns its name. The name may contain slashes
// (privatestore-<addr>/key_bundle) but no empty segments, control
// characters or spaces.
func ParseTopic(topic string) (string, error) {
	if len(topic) > maxTopicBytes {
		return "", ErrMalformedTopic
	}
	if !strings.HasPrefix(topic, topicPrefix) || !strings.HasSuffix(topic, topicSuffix) {
		return "", ErrMalformedTopic
	}
	if len(topic) <= len(topicPrefix)+len(topicSuffix) {
		return "", ErrMalformedTopic
	}
	name := topic[len(topicPrefix) : len(topic)-len(topicSuffix)]
	for _, seg := range strings.Split(name, "/") {
		if seg == "" {
			return "", ErrMalformedTopic
		}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c == 0x7f {
			return "", ErrMalformedTopic
		}
	}
	return name, nil
}

// IsEphemeral reports whether topic is ephemeral: /xmtp/0/mE-<name>/proto
// or /xmtp/0/dmE-<name>/proto. Its envelopes go to the streams subscribed
// when they are published, and a query of it finds nothing.
func IsEphemeral(topic string) bool {
	return strings.HasPrefix(topic, ephemeralPrefix) || strings.HasPrefix(topic, ephemeralV1Prefix)
}

// TopicOwner returns the wallet address that owns a topic name, for the
// topics that only their own wallet may publish to: contact-<addr> and
// privatestore-<addr>/<anything>. It returns false for every other topic.
func TopicOwner(name string) (string, bool) {
	switch {
	case strings.HasPrefix(name, "contact-"):
		// A contact name with a path keeps its owner part whole, so it
		// matches no wallet and nobody may publish to it.
		return strings.TrimPrefix(name, "contact-"), true
	case strings.HasPrefix(name, "privatestore-"):
		rest := strings.TrimPrefix(name, "privatestore-")
		addr, _, _ := strings.Cut(rest, "/")
		return addr, true
	}
	return "", false
}
