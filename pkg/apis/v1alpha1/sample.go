package v1alpha1

import _ "embed"

// SampleInventory is a commented, valid inventory of a highly available
// cluster (2 slb, 3 masters, 3 workers), written by 'k4t create config'.
//
//go:embed sample.yaml
var SampleInventory []byte
