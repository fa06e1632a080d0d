"""A crash-safe Pusher: smoke-test the SavedModel, then publish it atomically."""
