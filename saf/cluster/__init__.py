"""What is about the declared cluster."""
