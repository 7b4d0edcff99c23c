"""Text for language-model inputs: tokenising and embedding instruction pieces (:mod:`.text`)."""
