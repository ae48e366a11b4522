# zsh's own style with a right prompt that changes: the last status and a clock.
PROMPT='%n@%m %1~ %# '
RPROMPT='[%?] %*'
bindkey -e
HISTSIZE=100
