"""Help: wires view.help (the README, with anchors for links from the app)."""

from view.help import render

render()
