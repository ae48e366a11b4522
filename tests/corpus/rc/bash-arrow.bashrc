# A prompt with none of the usual closing glyphs.
PS1='\[\e[36m\]\W\[\e[0m\] › '
HISTFILE=/dev/null
