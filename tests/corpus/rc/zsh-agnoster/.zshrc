# agnoster-like powerline segments with a right prompt (no framework installed).
setopt prompt_subst
PROMPT='%K{black}%F{white} %n@%m %K{blue}%F{black}%F{white} %~ %K{green}%F{blue}%F{black}  main %k%F{green}%f '
RPROMPT='%(?..%F{red}✘ %?%f )%F{8}%*%f'
bindkey -e
HISTSIZE=100
