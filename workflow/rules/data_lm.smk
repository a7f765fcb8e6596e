# Prepare rules of the language-model family (PTB, WikiText-2).
