"""The contract kit: Schemathesis over the spec plus checks of the BroxiAI API's own rules."""
