"""Using a trained model: embed, score and generate proteins."""
