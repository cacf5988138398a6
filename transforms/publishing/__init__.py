"""What publishing to the Hub writes beside the data: the dataset card."""
