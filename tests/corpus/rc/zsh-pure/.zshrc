# pure-like: the directory on a line of its own, then an arrow prompt.
setopt prompt_subst
PROMPT=$'\n%F{blue}%~%f %F{8}main%f\n%(?.%F{magenta}.%F{red})❯%f '
PS2='%F{8}%_%f ❯ '
bindkey -e
HISTSIZE=100
