package idgen

// Word lists for Readable: short, lowercase ASCII, unambiguous, inoffensive.
var adjectives = [...]string{
	"amber", "ancient", "autumn", "bold", "brave", "breezy", "bright", "calm",
	"clever", "cosmic", "crisp", "curious", "dapper", "daring", "eager", "early",
	"fancy", "fearless", "fluffy", "fond", "gentle", "giant", "glad", "golden",
	"grand", "happy", "hidden", "humble", "icy", "jolly", "keen", "kind",
	"lively", "lucky", "lunar", "merry", "mighty", "misty", "modest", "nimble",
	"noble", "odd", "patient", "plucky", "polite", "proud", "quick", "quiet",
	"rapid", "rare", "rosy", "rustic", "shiny", "silent", "silver", "sleepy",
	"snowy", "solar", "spry", "steady", "sunny", "swift", "tidy", "witty",
}

var nouns = [...]string{
	"acorn", "anchor", "badger", "beacon", "bear", "beetle", "birch", "bison",
	"breeze", "brook", "canyon", "cedar", "cloud", "comet", "coral", "crane",
	"dolphin", "dune", "eagle", "ember", "falcon", "fern", "finch", "fjord",
	"forest", "fox", "garden", "glacier", "harbor", "hawk", "heron", "island",
	"jaguar", "kettle", "lagoon", "lantern", "lark", "lemur", "lynx", "maple",
	"meadow", "meteor", "moss", "nebula", "oak", "orchid", "otter", "owl",
	"panda", "pebble", "pine", "planet", "quartz", "raven", "river", "robin",
	"salmon", "spruce", "summit", "tiger", "tulip", "valley", "walrus", "willow",
}
