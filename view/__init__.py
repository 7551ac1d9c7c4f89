"""Everything that calls st.*: pages' bodies, chat bubbles, streaming, sidebar and errors."""
