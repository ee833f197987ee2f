"""Views translate HTTP to engine calls and engine results to JSON, nothing more."""
