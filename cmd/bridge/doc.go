// Command bridge is the one binary of the XMTP to HTTP bridge: it runs a
// bridge node, a development node, the local XMTP node, the database
// migrations, prints or checks its configuration, and is the client of a
// node's API for people (login, bridges, send, deliveries, replay) and for
// operators (admin, drain, smoke).
//
// main stays thin: it reads the environment and the arguments, and hands
// them to the command tree (root.go), whose commands build the parts from
// package system or call the API through package internal/apiclient.
//
// # Imports
//
// cmd is the top of the layout: it imports system (and system/config),
// smoke for `bridge smoke`, internal/apiclient for the client commands,
// and persistence for its errors; nothing
// imports cmd. internal/layout checks these rules.
package main
