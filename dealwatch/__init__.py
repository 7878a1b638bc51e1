"""dealwatch's composition root: the command line, process supervision and the combined web app."""
