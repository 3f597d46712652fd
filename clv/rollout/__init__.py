"""What happens to a trained model (register, gate, promote) and campaign segments."""
