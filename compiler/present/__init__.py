"""Presentation: pictures of a precise machine (`graph`), the generated reference (`docs`,
`explain`) and diagnostics for CI (SARIF, GitHub annotations). Everything here renders what
earlier stages computed; jinja2 and Graphviz are imported only inside these modules, which
`lint` and `compile` never load."""
