"""Training of the neural engine: datasets (:mod:`.datasets`) and the loop (:mod:`.train`)."""
