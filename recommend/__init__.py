"""Product recommendations (货找人): stage rules, products bought together, browsing without buying."""
