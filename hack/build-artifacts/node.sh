# shellcheck shell=bash
# Recipes for the node runtime pieces and images. Sourced by lib.sh.
