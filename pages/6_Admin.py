"""Admin: wires view.admin (who signed in and how much each keeps; admins only)."""

from view.admin import render

render()
