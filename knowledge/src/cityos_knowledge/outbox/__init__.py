"""The transactional outbox: events written with the change, published after the commit."""
