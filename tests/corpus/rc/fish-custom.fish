# A theme's prompt: a tag, the directory, a branch, an arrow.
function fish_prompt
    set_color magenta; printf '(kt) '
    set_color cyan; printf '%s' (prompt_pwd)
    set_color normal; printf ' on '
    set_color yellow; printf 'main'
    set_color green; printf ' ❯ '
    set_color normal
end
function fish_greeting; end
