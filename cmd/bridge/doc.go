// Command bridge is the one binary of the XMTP to HTTP bridge: it runs a
// bridge node, a development node, the local XMTP node, the database
// migrations, and prints or checks its configuration.
//
// main stays thin: it reads the environment and the arguments, and hands
// them to the command, which builds the parts from package system.
//
// # Imports
//
// cmd is the top of the layout: it imports system (and system/config),
// smoke for `bridge smoke`, and persistence for its errors; nothing
// imports cmd. internal/layout checks these rules.
package main
