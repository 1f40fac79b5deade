package webhook

import (
	"errors"
	"testing"
	"time"
)

var sampleMessage = Message{
	ID:             "3f1c0d6e9a",
	Bridge:         "0x1111111111111111111111111111111111111111",
	Sender:         "0x2222222222222222222222222222222222222222",
	Topic:          "/xmtp/0/m-abc/proto",
	ConversationID: "support/42",
	ContentType:    "xmtp.org/text:1.0",
	Content:        "hello <world> & \"you\"",
	SentAt:         time.Date(2026, 11, 23, 17, 8, 13, 123456789, time.FixedZone("x", 3600)),
}

func TestEncodeBodyIsByteExact(t *testing.T) {
	noConv := sampleMessage
	noConv.ConversationID = ""
	cases := []struct {
		name string
		f    Format
		m    Message
		want string
	}{
		{"relaycc", FormatRelaycc, sampleMessage,
			`{"bridgePeerAddress":"0x1111111111111111111111111111111111111111","message":{"conversation":{"peerAddress":"0x2222222222222222222222222222222222222222","context":{"conversationId":"support/42"}},"content":"hello <world> & \"you\""}}`},
		{"relaycc without conversation id", FormatRelaycc, noConv,
			`{"bridgePeerAddress":"0x1111111111111111111111111111111111111111","message":{"conversation":{"peerAddress":"0x2222222222222222222222222222222222222222","context":{}},"content":"hello <world> & \"you\""}}`},
		{"json", FormatJSON, sampleMessage,
			`{"id":"3f1c0d6e9a","bridge":"0x1111111111111111111111111111111111111111","sender":"0x2222222222222222222222222222222222222222","conversation":{"topic":"/xmtp/0/m-abc/proto","id":"support/42"},"contentType":"xmtp.org/text:1.0","content":"hello <world> & \"you\"","sentAt":"2026-11-23T16:08:13.123456789Z"}`},
		{"json without conversation id", FormatJSON, noConv,
			`{"id":"3f1c0d6e9a","bridge":"0x1111111111111111111111111111111111111111","sender":"0x2222222222222222222222222222222222222222","conversation":{"topic":"/xmtp/0/m-abc/proto"},"contentType":"xmtp.org/text:1.0","content":"hello <world> & \"you\"","sentAt":"2026-11-23T16:08:13.123456789Z"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := EncodeBody(c.f, c.m)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Fatalf("body\n got %s\nwant %s", got, c.want)
			}
		})
	}
	if _, err := EncodeBody("xml", sampleMessage); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("unknown format: %v", err)
	}
}

func TestDecodeRelayccReply(t *testing.T) {
	cases := []struct {
		body  string
		reply string
		has   bool
		err   error
	}{
		{`{"ok":true,"data":"echo: hello"}`, "echo: hello", true, nil},
		{`{"ok":true,"data":{"b":1, "a":[1, 2]}}`, `{"b":1,"a":[1,2]}`, true, nil},
		{`{"ok":true,"data":42}`, "42", true, nil},
		{`{"ok":true}`, "", false, nil},
		{`{"ok":true,"data":null}`, "", false, nil},
		{`{"ok":false,"data":"x"}`, "", false, ErrNotOK},
		{`{"data":"x"}`, "", false, ErrBadReply},
		{`{"ok":"yes"}`, "", false, ErrBadReply},
		{`garbage`, "", false, ErrBadReply},
		{``, "", false, ErrBadReply},
	}
	for _, c := range cases {
		reply, has, err := DecodeRelayccReply([]byte(c.body))
		if reply != c.reply || has != c.has || !errors.Is(err, c.err) || (c.err == nil && err != nil) {
			t.Errorf("DecodeRelayccReply(%q) = %q, %v, %v; want %q, %v, %v", c.body, reply, has, err, c.reply, c.has, c.err)
		}
	}
}

func TestDecodeJSONReply(t *testing.T) {
	cases := []struct {
		ct    string
		body  string
		reply string
		has   bool
		err   error
	}{
		{"text/plain; charset=utf-8", "thanks!", "thanks!", true, nil},
		{"", "plain words", "plain words", true, nil},
		{"application/json", `{"reply":"hi there"}`, "hi there", true, nil},
		{"application/vnd.x+json", `{"reply":"hi"}`, "hi", true, nil},
		{"", `{"reply":"untyped"}`, "untyped", true, nil},
		{"application/json", `{"other":1}`, "", false, nil},
		{"application/json", `{"reply":null}`, "", false, nil},
		{"application/json", ``, "", false, nil},
		{"text/plain", ``, "", false, nil},
		{"application/json", `{"reply":5}`, "", false, ErrBadReply},
		{"application/json", `<html>`, "", false, ErrBadReply},
		{"text/plain", "\xff\xfe", "", false, ErrBadReply},
	}
	for _, c := range cases {
		reply, has, err := DecodeJSONReply(c.ct, []byte(c.body))
		if reply != c.reply || has != c.has || !errors.Is(err, c.err) || (c.err == nil && err != nil) {
			t.Errorf("DecodeJSONReply(%q, %q) = %q, %v, %v; want %q, %v, %v", c.ct, c.body, reply, has, err, c.reply, c.has, c.err)
		}
	}
}
