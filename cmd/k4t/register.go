package main

import "github.com/spf13/cobra"

// commands are the top-level subcommands; each file adds its own in init,
// so command files never touch one another.
var commands []func(*globalFlags) *cobra.Command

func register(f func(*globalFlags) *cobra.Command) { commands = append(commands, f) }
