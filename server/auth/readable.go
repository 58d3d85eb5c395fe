package auth

import (
	"crypto/rand"
	"fmt"
	"math/big"
)

// Word lists for human-readable ids ("<adjective>-<noun>-<8 digits>").
var (
	readableAdjectives = []string{
		"amber", "ancient", "autumn", "bold", "brave", "breezy", "bright", "calm",
		"clever", "cosmic", "crisp", "curious", "dapper", "daring", "eager", "early",
		"fancy", "fearless", "fluffy", "fond", "gentle", "giant", "glad", "golden",
		"grand", "happy", "hidden", "humble", "icy", "jolly", "keen", "kind",
		"lively", "lucky", "lunar", "merry", "mighty", "misty", "modest", "nimble",
		"noble", "odd", "patient", "plucky", "polite", "proud", "quick", "quiet",
		"rapid", "rare", "rosy", "rustic", "shiny", "silent", "silver", "sleepy",
		"snowy", "solar", "spry", "steady", "sunny", "swift", "tidy", "witty",
	}
	readableNouns = []string{
		"acorn", "anchor", "badger", "beacon", "bear", "beetle", "birch", "bison",
		"breeze", "brook", "canyon", "cedar", "cloud", "comet", "coral", "crane",
		"dolphin", "dune", "eagle", "ember", "falcon", "fern", "finch", "fjord",
		"forest", "fox", "garden", "glacier", "harbor", "hawk", "heron", "island",
		"jaguar", "kettle", "lagoon", "lantern", "lark", "lemur", "lynx", "maple",
		"meadow", "meteor", "moss", "nebula", "oak", "orchid", "otter", "owl",
		"panda", "pebble", "pine", "planet", "quartz", "raven", "river", "robin",
		"salmon", "spruce", "summit", "tiger", "tulip", "valley", "walrus", "willow",
	}
)

func randIndex(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		// crypto/rand.Reader does not fail on supported platforms.
		panic(fmt.Sprintf("auth: crypto/rand failed: %v", err))
	}
	return int(v.Int64())
}

// ReadableID returns a random human-readable id made of lowercase words
// and digits joined by '-', e.g. "brave-otter-04417286". It is used for
// anonymous user ids and for the ids of child-token users.
func ReadableID() string {
	return fmt.Sprintf("%s-%s-%08d",
		readableAdjectives[randIndex(len(readableAdjectives))],
		readableNouns[randIndex(len(readableNouns))],
		randIndex(100_000_000))
}
